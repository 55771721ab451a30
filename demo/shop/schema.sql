-- The demo shop (synthetic data). tools/_shop.py builds state_dir()/shop.db from this file and the
-- CSVs beside it on first use; the support agent adds tickets and escalations to the same database.
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    city        TEXT NOT NULL,
    country     TEXT NOT NULL,          -- ISO 3166 alpha-2
    joined      TEXT NOT NULL           -- YYYY-MM-DD
);

CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    category   TEXT NOT NULL,
    price      REAL NOT NULL CHECK (price > 0)
);

CREATE TABLE orders (
    order_id           INTEGER PRIMARY KEY,
    customer_id        TEXT NOT NULL REFERENCES customers(customer_id),
    order_date         TEXT NOT NULL,   -- YYYY-MM-DD
    status             TEXT NOT NULL CHECK (status IN
                       ('pending', 'processing', 'shipped', 'delayed', 'delivered', 'cancelled', 'returned')),
    carrier            TEXT,            -- UPS, FedEx, USPS, DHL; NULL until shipped
    tracking_number    TEXT,
    shipped_date       TEXT,
    estimated_delivery TEXT,
    delivered_date     TEXT,
    total              REAL NOT NULL    -- sum of the order's items
);

CREATE TABLE order_items (
    order_id   INTEGER NOT NULL REFERENCES orders(order_id),
    product_id TEXT NOT NULL REFERENCES products(product_id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    unit_price REAL NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Written by the support agent. Ticket ids are shown as T-0001, T-0002, ... (from ticket_id).
CREATE TABLE tickets (
    ticket_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    INTEGER REFERENCES orders(order_id),
    subject     TEXT NOT NULL,
    description TEXT NOT NULL,
    priority    TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'escalated', 'closed'))
);

CREATE TABLE escalations (
    escalation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id     INTEGER NOT NULL UNIQUE REFERENCES tickets(ticket_id),
    reason        TEXT NOT NULL
);

CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE INDEX orders_by_date ON orders(order_date);
CREATE INDEX items_by_product ON order_items(product_id);
