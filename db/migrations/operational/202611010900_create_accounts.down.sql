-- Drop accounts table
DROP TABLE accounts;
