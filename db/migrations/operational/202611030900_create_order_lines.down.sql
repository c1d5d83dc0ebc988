-- Drop order_lines table
DROP TABLE order_lines;
