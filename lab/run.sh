#!/bin/sh
# Run a script as root inside the lab VM (Debian kernel under qemu, host root
# file system read-only + tmpfs overlay). See lab/lab.go.
#   lab/run.sh SCRIPT            run SCRIPT; exit with its status (125: VM failed)
#   lab/run.sh -shell            interactive shell (line mode)
#   lab/run.sh -dir DIR SCRIPT   share DIR read-write as $LAB_DIR
set -e
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$root/build/lab"
(cd "$root" && go build -o build/lab/labrun ./lab/labrun)
exec "$root/build/lab/labrun" "$@"
