BEGIN TRANSACTION;
CREATE TABLE actions (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	target TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	error TEXT, 
	detail TEXT, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO "actions" VALUES(1,1,'download','download:7','Film/film.mkv','done',1,NULL,'10 B','2024-03-01 02:01:00.000000','2024-03-01 02:02:00.000000');
INSERT INTO "actions" VALUES(2,1,'submit','submit:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','film.torrent','failed',1,'put.io answered 500',NULL,'2024-03-01 02:01:00.000000','2024-03-01 02:02:00.000000');
INSERT INTO "actions" VALUES(3,2,'download','download:8','Film/extra.mkv','started',1,NULL,NULL,'2024-03-01 02:11:00.000000',NULL);
CREATE TABLE downloads (
	file_id BIGINT NOT NULL, 
	relative_path TEXT, 
	size BIGINT, 
	crc32 VARCHAR(8), 
	bytes_done BIGINT NOT NULL, 
	verified_at DATETIME, 
	updated_at DATETIME, 
	failures INTEGER NOT NULL, 
	PRIMARY KEY (file_id)
);
INSERT INTO "downloads" VALUES(7,'Film/film.mkv',10,'0badf00d',10,'2024-03-01 02:02:00.000000','2024-03-01 02:02:00.000000',0);
INSERT INTO "downloads" VALUES(8,'Film/extra.mkv',100,NULL,40,NULL,'2024-03-01 02:11:00.000000',0);
INSERT INTO "downloads" VALUES(9,NULL,NULL,NULL,0,NULL,NULL,2);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	command VARCHAR(64) NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	exit_code INTEGER, 
	summary TEXT, 
	dry_run BOOLEAN NOT NULL, 
	host VARCHAR(255) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES(1,'sync','2024-03-01 02:00:00.000000','2024-03-01 02:03:00.000000',0,'1 downloaded',0,'vm');
INSERT INTO "runs" VALUES(2,'sync','2024-03-01 02:10:00.000000',NULL,NULL,NULL,0,'vm');
CREATE TABLE schema_info (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "schema_info" VALUES(1,1);
CREATE TABLE submissions (
	info_hash VARCHAR(64) NOT NULL, 
	transfer_id BIGINT, 
	name TEXT NOT NULL, 
	submitted_at DATETIME NOT NULL, 
	PRIMARY KEY (info_hash)
);
INSERT INTO "submissions" VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',41,'Film','2024-03-01 02:01:00.000000');
INSERT INTO "submissions" VALUES('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',NULL,'Other','2024-03-01 02:01:00.000000');
CREATE INDEX ix_actions_run_id ON actions (run_id);
CREATE INDEX ix_actions_status ON actions (status);
CREATE INDEX ix_actions_key ON actions ("key");
COMMIT;
