-- Drop orders table
DROP TABLE orders;
