# Sourced by the scripts that need the local AWS emulator (moto's server, installed into
# .venv by scripts/test). start_aws_emulator LOG starts it on a free port, stops it when the
# calling script exits, and exports ASSENT_TEST_AWS_ENDPOINT once it accepts connections.
start_aws_emulator() {
  local log="$1" port
  if [ ! -x .venv/bin/moto_server ]; then
    echo "$0: run ./scripts/test once first (it installs the AWS emulator into .venv)" >&2
    exit 1
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$(dirname "$log")"
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
  aws_emulator_pid=$!
  trap 'kill "$aws_emulator_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.2
  done
  export ASSENT_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
}
