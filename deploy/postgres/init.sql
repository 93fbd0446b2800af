-- relay's own database, beside the ones Temporal's auto-setup creates.
CREATE DATABASE relay;
