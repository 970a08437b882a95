"""The commands: `cli` (the `extract-think` entry point) over `run`, `plan`, `compare`,
`inspect` and the teacher `preflight`; `quiet` keeps Beam's own logging out of the way."""
