from labelloop.cli import app

app(prog_name="labelloop")
