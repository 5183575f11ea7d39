"""Browsing the store in Datasette: metadata, views and our plugins."""
