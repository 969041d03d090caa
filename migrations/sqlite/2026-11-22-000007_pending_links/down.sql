DROP TABLE pending_links;
