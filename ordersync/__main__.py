from ordersync.cli import app

app()
