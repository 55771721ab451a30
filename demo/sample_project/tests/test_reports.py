from tinyshop import db
from tinyshop.reports import export_orders


def test_export_writes_header_and_rows(tmp_path):
    conn = db.connect(":memory:")
    db.create_schema(conn)
    conn.execute("INSERT INTO orders (customer_id, total) VALUES (7, 19.99)")
    target = tmp_path / "orders.csv"
    assert export_orders(conn, target) == 1
    assert target.read_text().splitlines() == ["id,customer_id,total", "1,7,19.99"]
