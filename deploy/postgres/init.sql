-- relay's own database and user, apart from Temporal's (which temporal-schema creates):
-- relay's grants and connection budget are its own.
CREATE USER relay WITH PASSWORD 'relay';
CREATE DATABASE relay OWNER relay;
