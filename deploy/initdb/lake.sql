-- The DuckLake catalog lives in its own database beside the Dagster instance's.
CREATE DATABASE lake OWNER dagster;
