from tinyshop import db


def make_db():
    conn = db.connect(":memory:")
    db.create_schema(conn)
    conn.executemany("INSERT INTO customers (name, email) VALUES (?, ?)",
                     [("Ada Lovelace", "ada@example.com"), ("Alan Turing", "alan@example.com")])
    conn.execute("INSERT INTO orders (customer_id, total) VALUES (1, 42.5)")
    return conn


def test_find_customers_by_part_of_name():
    conn = make_db()
    assert [row["name"] for row in db.find_customers(conn, "Ada")] == ["Ada Lovelace"]


def test_orders_for_customer():
    conn = make_db()
    assert [tuple(row) for row in db.orders_for(conn, 1)] == [(1, 42.5)]
