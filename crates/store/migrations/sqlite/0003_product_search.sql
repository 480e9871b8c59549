-- Substring search on product names and descriptions: an FTS5 index of
-- trigrams, kept in step with the products table by triggers.
CREATE VIRTUAL TABLE products_search USING fts5(
    name, description,
    content = 'products', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO products_search (products_search) VALUES ('rebuild');

CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_search (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;
CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_search (products_search, rowid, name, description)
    VALUES ('delete', old.rowid, old.name, old.description);
END;
CREATE TRIGGER products_search_update AFTER UPDATE OF name, description ON products BEGIN
    INSERT INTO products_search (products_search, rowid, name, description)
    VALUES ('delete', old.rowid, old.name, old.description);
    INSERT INTO products_search (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;
