from tideflow.cli.main import app

app(prog_name="tideflow")
