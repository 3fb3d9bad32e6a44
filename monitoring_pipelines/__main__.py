from monitoring_pipelines.cli import console

console()
