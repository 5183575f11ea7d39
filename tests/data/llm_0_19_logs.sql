-- An llm logs.db written by llm 0.19 (legacy responses table), dumped with sqlite3 .dump.
-- Made by: pip install llm==0.19 llm-markov; llm -m markov ...; llm -c ... (3 responses, 2 conversations).
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE IF NOT EXISTS "_llm_migrations" (
   "name" TEXT PRIMARY KEY,
   "applied_at" TEXT
);
INSERT INTO _llm_migrations VALUES('m001_initial','2026-11-24 22:50:02.821257');
INSERT INTO _llm_migrations VALUES('m002_id_primary_key','2026-11-24 22:50:02.957191');
INSERT INTO _llm_migrations VALUES('m003_chat_id_foreign_key','2026-11-24 22:50:03.025191');
INSERT INTO _llm_migrations VALUES('m004_column_order','2026-11-24 22:50:03.063753');
INSERT INTO _llm_migrations VALUES('m004_drop_provider','2026-11-24 22:50:03.132904');
INSERT INTO _llm_migrations VALUES('m005_debug','2026-11-24 22:50:03.191490');
INSERT INTO _llm_migrations VALUES('m006_new_logs_table','2026-11-24 22:50:03.261094');
INSERT INTO _llm_migrations VALUES('m007_finish_logs_table','2026-11-24 22:50:03.282011');
INSERT INTO _llm_migrations VALUES('m008_reply_to_id_foreign_key','2026-11-24 22:50:03.412609');
INSERT INTO _llm_migrations VALUES('m008_fix_column_order_in_logs','2026-11-24 22:50:03.448430');
INSERT INTO _llm_migrations VALUES('m009_delete_logs_table_if_empty','2026-11-24 22:50:03.462056');
INSERT INTO _llm_migrations VALUES('m010_create_new_log_tables','2026-11-24 22:50:03.495518');
INSERT INTO _llm_migrations VALUES('m011_fts_for_responses','2026-11-24 22:50:03.572125');
INSERT INTO _llm_migrations VALUES('m012_attachments_tables','2026-11-24 22:50:03.600565');
INSERT INTO _llm_migrations VALUES('m013_usage','2026-11-24 22:50:03.647566');
CREATE TABLE IF NOT EXISTS "conversations" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT,
   "model" TEXT
);
INSERT INTO conversations VALUES('01m87w10096gg6xfz06befy3dm','the cat sat on the mat and the …','markov');
INSERT INTO conversations VALUES('01m87w123mcy8frhm9h4b4stgg','alpha beta gamma alpha delta','markov');
CREATE TABLE IF NOT EXISTS "responses" (
   "id" TEXT PRIMARY KEY,
   "model" TEXT,
   "prompt" TEXT,
   "system" TEXT,
   "prompt_json" TEXT,
   "options_json" TEXT,
   "response" TEXT,
   "response_json" TEXT,
   "conversation_id" TEXT REFERENCES "conversations"("id"),
   "duration_ms" INTEGER,
   "datetime_utc" TEXT
, "input_tokens" INTEGER, "output_tokens" INTEGER, "token_details" TEXT);
INSERT INTO responses VALUES('01m87w100fhj39art35x9hxak2','markov','the cat sat on the mat and the dog sat on the log',NULL,NULL,'{"length": 8, "delay": 0.0}','log the dog sat on the dog sat ',NULL,'01m87w10096gg6xfz06befy3dm',0,'2026-11-24T22:50:02.764998',NULL,NULL,NULL);
INSERT INTO responses VALUES('01m87w123yz76h7e330t0ske63','markov','alpha beta gamma alpha delta','a system prompt',NULL,'{"length": 5}','delta delta delta beta gamma ',NULL,'01m87w123mcy8frhm9h4b4stgg',168,'2026-11-24T22:50:05.641111',NULL,NULL,NULL);
INSERT INTO responses VALUES('01m87w13whf2fha328zaprnwvh','markov','follow up words follow',NULL,NULL,'{"length": 4}','up words follow up ',NULL,'01m87w123mcy8frhm9h4b4stgg',80,'2026-11-24T22:50:07.551787',NULL,NULL,NULL);
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','responses_fts','responses_fts',0,'CREATE VIRTUAL TABLE "responses_fts" USING FTS5 (
    "prompt", "response",
    content="responses"
)');
CREATE TABLE IF NOT EXISTS 'responses_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO responses_fts_data VALUES(1,X'031611');
INSERT INTO responses_fts_data VALUES(10,X'000000000103030003010101020101030101');
INSERT INTO responses_fts_data VALUES(137438953473,X'0000005a0430616e6401020801036361740102030103646f67010a0a0101040601036c6f6701080e01010201036d617401020701026f6e010a05090101060103736174010c0409010105060103746865011002060506010103060408080c0b080b0d');
INSERT INTO responses_fts_data VALUES(274877906945,X'000000370630616c70686102040205010462657461020803010105010564656c7461020c060101020303010567616d6d61020804010106040b0c0f');
INSERT INTO responses_fts_data VALUES(412316860417,X'0000002b0730666f6c6c6f77030a020501010401027570030a03010102050105776f726473030804010103040f0b');
CREATE TABLE IF NOT EXISTS 'responses_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO responses_fts_idx VALUES(1,X'',2);
INSERT INTO responses_fts_idx VALUES(2,X'',2);
INSERT INTO responses_fts_idx VALUES(3,X'',2);
CREATE TABLE IF NOT EXISTS 'responses_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO responses_fts_docsize VALUES(1,X'0d08');
INSERT INTO responses_fts_docsize VALUES(2,X'0505');
INSERT INTO responses_fts_docsize VALUES(3,X'0404');
CREATE TABLE IF NOT EXISTS 'responses_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO responses_fts_config VALUES('version',4);
CREATE TABLE IF NOT EXISTS "attachments" (
   "id" TEXT PRIMARY KEY,
   "type" TEXT,
   "path" TEXT,
   "url" TEXT,
   "content" BLOB
);
CREATE TABLE IF NOT EXISTS "prompt_attachments" (
   "response_id" TEXT REFERENCES "responses"("id"),
   "attachment_id" TEXT REFERENCES "attachments"("id"),
   "order" INTEGER,
   PRIMARY KEY ("response_id", "attachment_id")
);
CREATE TRIGGER "responses_ai" AFTER INSERT ON "responses" BEGIN
  INSERT INTO "responses_fts" (rowid, "prompt", "response") VALUES (new.rowid, new."prompt", new."response");
END;
CREATE TRIGGER "responses_ad" AFTER DELETE ON "responses" BEGIN
  INSERT INTO "responses_fts" ("responses_fts", rowid, "prompt", "response") VALUES('delete', old.rowid, old."prompt", old."response");
END;
CREATE TRIGGER "responses_au" AFTER UPDATE ON "responses" BEGIN
  INSERT INTO "responses_fts" ("responses_fts", rowid, "prompt", "response") VALUES('delete', old.rowid, old."prompt", old."response");
  INSERT INTO "responses_fts" (rowid, "prompt", "response") VALUES (new.rowid, new."prompt", new."response");
END;
PRAGMA writable_schema=OFF;
COMMIT;
