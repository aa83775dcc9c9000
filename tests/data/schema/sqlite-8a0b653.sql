-- The schema `digest init` made at commit 8a0b653 (the first release that ran the daily
-- job, before the web app and the ledger's leases): sqlite_master of that database, as
-- written. tests/test_store_upgrade.py opens such a database with the current code.
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE papers (
	"key" VARCHAR(200) NOT NULL, 
	title TEXT NOT NULL, 
	abstract TEXT NOT NULL, 
	authors JSON NOT NULL, 
	categories JSON NOT NULL, 
	url TEXT NOT NULL, 
	pdf_url TEXT NOT NULL, 
	source VARCHAR(300) NOT NULL, 
	published DATE, 
	announce_type VARCHAR(20) NOT NULL, 
	version INTEGER, 
	doi VARCHAR(300), 
	comment TEXT, 
	upvotes INTEGER, 
	ai_summary TEXT, 
	ai_keywords JSON NOT NULL, 
	batch_day DATE NOT NULL, 
	stored_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE INDEX ix_papers_batch_day ON papers (batch_day);
CREATE TABLE subscribers (
	id INTEGER NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	profile JSON NOT NULL, 
	send_hour INTEGER NOT NULL, 
	timezone VARCHAR(64) NOT NULL, 
	cadence VARCHAR(10) NOT NULL, 
	weekday INTEGER NOT NULL, 
	max_papers INTEGER NOT NULL, 
	empty_digest VARCHAR(10) NOT NULL, 
	popularity FLOAT NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	confirmed_at DATETIME, 
	confirm_sent_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (email)
);
CREATE INDEX ix_subscribers_status ON subscribers (status);
CREATE TABLE source_state (
	source VARCHAR(500) NOT NULL, 
	etag TEXT, 
	last_modified TEXT, 
	last_status VARCHAR(20), 
	last_error TEXT, 
	last_run_at DATETIME, 
	last_ok_at DATETIME, 
	last_papers INTEGER, 
	last_new INTEGER, 
	PRIMARY KEY (source)
);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	day DATE NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME NOT NULL, 
	sent INTEGER NOT NULL, 
	failed INTEGER NOT NULL, 
	report JSON NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE suppressions (
	email_hash VARCHAR(64) NOT NULL, 
	reason VARCHAR(50) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (email_hash)
);
CREATE TABLE ranker_state (
	id INTEGER NOT NULL, 
	data BLOB NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE deliveries (
	id INTEGER NOT NULL, 
	subscriber_id INTEGER NOT NULL, 
	day DATE NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	message_id VARCHAR(300) NOT NULL, 
	attempts INTEGER NOT NULL, 
	error TEXT, 
	papers JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	next_attempt_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_delivery_subscriber_day UNIQUE (subscriber_id, day), 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
);
CREATE INDEX ix_deliveries_day ON deliveries (day);
CREATE INDEX ix_deliveries_status ON deliveries (status);
CREATE TABLE sent_papers (
	subscriber_id INTEGER NOT NULL, 
	paper_key VARCHAR(200) NOT NULL, 
	day DATE NOT NULL, 
	PRIMARY KEY (subscriber_id, paper_key), 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
);
CREATE TABLE feedback (
	subscriber_id INTEGER NOT NULL, 
	paper_key VARCHAR(200) NOT NULL, 
	vote INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (subscriber_id, paper_key), 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
);
