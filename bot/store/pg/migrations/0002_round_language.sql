-- Each round's customer language (ISO 639-1), decided when the round is created, and its drafts'
-- copy of it (issue 28). NULL: a round recorded before languages were.
ALTER TABLE rounds ADD COLUMN language text;
ALTER TABLE drafts ADD COLUMN language text;
