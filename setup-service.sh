#!/usr/bin/env bash
# Install the CrowdSky worker as a systemd service.
#
#   sudo ./setup-service.sh                      # one worker: crowdsky-worker.service
#   sudo ./setup-service.sh --instances 4        # four: crowdsky-worker@1..4.service
#   ./setup-service.sh --dry-run --output DIR    # only write the unit files (no root needed)
#
# The units come from src/crowdsky/worker/systemd/*.service.in. Settings and secrets go
# to /etc/crowdsky/worker.env (mode 600, copied from --env-file once; never overwritten
# unless --force-env). The worker runs as the invoking user (or --user), with absolute
# state/scratch folders managed by systemd (/var/lib/crowdsky-worker,
# /var/cache/crowdsky-worker, numba's kernel cache included), Restart=on-failure, a stop
# timeout derived from the worker's shutdown timeout, and sandboxing. Check the result
# with `systemd-analyze verify`. The plate solver's Debian packages (astrometry.net, the
# Tycho-2 index files, ~260 MB, and stellarium-data's colours) are installed with apt-get
# unless --no-solver; a
# worker without them still stacks and records why its stacks are not plate solved.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE_DIR="$SCRIPT_DIR/src/crowdsky/worker/systemd"
UNIT_DIR="/etc/systemd/system"
CONFIG_DIR="/etc/crowdsky"
ENV_TARGET="$CONFIG_DIR/worker.env"
# The worker's default SHUTDOWN_TIMEOUT and its hand-back grace
# (crowdsky.worker.config.DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
# crowdsky.worker.main.HANDBACK_GRACE_SECONDS); systemd waits that long plus a margin
# for the hand-back calls before it sends SIGKILL.
DEFAULT_SHUTDOWN_TIMEOUT=120
# astrometry.net and the Tycho-2 index files for 22'-60' quads (the S50's 43' x 76' field);
# stellarium-data for its star catalogues' B-V (the previews' colour calibration; 246 MB
# to download, of which the worker reads 9 MB)
SOLVER_PACKAGES=(astrometry.net astrometry-data-tycho2-07-littleendian
                 astrometry-data-tycho2-08-littleendian astrometry-data-tycho2-09-littleendian
                 stellarium-data)
HANDBACK_GRACE_SECONDS=20
STOP_MARGIN_SECONDS=40

dry_run=0
output_dir=""
run_user="${SUDO_USER:-$(id -un)}"
env_source="$SCRIPT_DIR/.env"
exec_path=""
instances=0
start=1
force_env=0
shutdown_timeout=""
install_solver=1

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --dry-run            write the unit files only (to --output, default ./systemd-units)
  --output DIR         where --dry-run writes the units
  --user NAME          account the worker runs as (default: the sudo user)
  --env-file PATH      worker settings to install as /etc/crowdsky/worker.env (default: ./.env)
  --force-env          replace an existing /etc/crowdsky/worker.env
  --exec PATH          the crowdsky executable (default: ./.venv/bin/crowdsky, then PATH)
  --instances N        enable N template instances instead of the single unit
  --shutdown-timeout S seconds running jobs get after SIGTERM (default: SHUTDOWN_TIMEOUT
                       from the settings file, else 120); TimeoutStopSec is S + 60
  --unit-dir DIR       where units are installed (default: /etc/systemd/system)
  --no-start           install and enable, but do not start
  --no-solver          do not install the plate solver's Debian packages
  -h, --help           this help
EOF
}

die() { echo "setup-service.sh: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --output) output_dir="${2:?--output needs a folder}"; shift ;;
        --user) run_user="${2:?--user needs a name}"; shift ;;
        --env-file) env_source="${2:?--env-file needs a path}"; shift ;;
        --force-env) force_env=1 ;;
        --exec) exec_path="${2:?--exec needs a path}"; shift ;;
        --instances) instances="${2:?--instances needs a number}"; shift ;;
        --shutdown-timeout) shutdown_timeout="${2:?--shutdown-timeout needs seconds}"; shift ;;
        --unit-dir) UNIT_DIR="${2:?--unit-dir needs a folder}"; shift ;;
        --no-start) start=0 ;;
        --no-solver) install_solver=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

[[ "$instances" =~ ^[0-9]+$ ]] || die "--instances must be a number"

if [[ -z "$exec_path" ]]; then
    if [[ -x "$SCRIPT_DIR/.venv/bin/crowdsky" ]]; then
        exec_path="$SCRIPT_DIR/.venv/bin/crowdsky"
    elif command -v crowdsky >/dev/null 2>&1; then
        exec_path="$(command -v crowdsky)"
    else
        die "no crowdsky executable: create the virtual environment (.venv) or pass --exec"
    fi
fi
exec_path="$(cd -- "$(dirname -- "$exec_path")" && pwd)/$(basename -- "$exec_path")"
[[ -x "$exec_path" ]] || die "not executable: $exec_path"
[[ "$exec_path" =~ [[:space:]] ]] && die "the executable path must not contain spaces: $exec_path"

id "$run_user" >/dev/null 2>&1 || die "no such user: $run_user"
run_group="$(id -gn "$run_user")"
[[ -d "$TEMPLATE_DIR" ]] || die "unit templates not found in $TEMPLATE_DIR"

settings_value() {  # settings_value FILE NAME: NAME's last value in a dotenv file, if any
    [[ -r "$1" ]] || return 0
    sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$2[[:space:]]*=[[:space:]]*[\"']?([^\"'#[:space:]]*).*/\2/p" \
        "$1" | tail -n 1
}

# The settings file the service will read: the installed one unless it gets replaced.
settings_file="$env_source"
if [[ "$dry_run" -eq 0 && -f "$ENV_TARGET" && "$force_env" -eq 0 ]]; then
    settings_file="$ENV_TARGET"
fi
if [[ -z "$shutdown_timeout" ]]; then
    shutdown_timeout="$(settings_value "$settings_file" SHUTDOWN_TIMEOUT)"
    [[ -n "$shutdown_timeout" ]] || shutdown_timeout="$DEFAULT_SHUTDOWN_TIMEOUT"
fi
[[ "$shutdown_timeout" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    die "SHUTDOWN_TIMEOUT must be a number of seconds, got '$shutdown_timeout'"
shutdown_whole="$((10#${shutdown_timeout%%.*}))"
if [[ "$shutdown_timeout" == *.* && ! "${shutdown_timeout#*.}" =~ ^0+$ ]]; then
    shutdown_whole=$((shutdown_whole + 1))  # round a fraction up
fi
timeout_stop_sec=$((shutdown_whole + HANDBACK_GRACE_SECONDS + STOP_MARGIN_SECONDS))

render() {  # render TEMPLATE OUTPUT
    sed -e "s|@EXEC@|$exec_path|g" \
        -e "s|@USER@|$run_user|g" \
        -e "s|@GROUP@|$run_group|g" \
        -e "s|@ENV_FILE@|$ENV_TARGET|g" \
        -e "s|@SHUTDOWN_TIMEOUT@|$shutdown_timeout|g" \
        -e "s|@TIMEOUT_STOP_SEC@|$timeout_stop_sec|g" \
        "$1" > "$2"
    chmod 644 "$2"
}

if [[ "$dry_run" -eq 1 ]]; then
    output_dir="${output_dir:-./systemd-units}"
    mkdir -p "$output_dir"
    render "$TEMPLATE_DIR/crowdsky-worker.service.in" "$output_dir/crowdsky-worker.service"
    render "$TEMPLATE_DIR/crowdsky-worker@.service.in" "$output_dir/crowdsky-worker@.service"
    echo "wrote $output_dir/crowdsky-worker.service and $output_dir/crowdsky-worker@.service"
    echo "shutdown timeout ${shutdown_timeout} s, TimeoutStopSec=${timeout_stop_sec}"
    exit 0
fi

[[ "$(id -u)" -eq 0 ]] || die "run with sudo (or use --dry-run --output DIR)"
[[ "$run_user" != "root" ]] || echo "warning: the worker will run as root; prefer --user" >&2
command -v systemctl >/dev/null 2>&1 || die "systemctl not found: is this a systemd host?"

install_plate_solver() {  # Debian's packages; other systems: say what is missing
    local missing=()
    for package in "${SOLVER_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$package")
    done
    [[ ${#missing[@]} -eq 0 ]] && { echo "plate solver: installed"; return 0; }
    if command -v apt-get >/dev/null 2>&1; then
        echo "installing the plate solver: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
            echo "warning: apt-get failed; the worker will stack without plate solving" >&2
    else
        echo "warning: no apt-get; install astrometry.net and its Tycho-2 index files 07-09" \
            "into /usr/share/astrometry, or the worker stacks without plate solving" >&2
    fi
}
if [[ "$install_solver" -eq 1 ]]; then
    install_plate_solver
fi

if [[ ! -f "$ENV_TARGET" || "$force_env" -eq 1 ]]; then
    [[ -f "$env_source" ]] || die "no settings file $env_source: copy .env.example to .env and edit it"
fi
install -d -m 755 "$CONFIG_DIR"
if [[ -f "$ENV_TARGET" && "$force_env" -eq 0 ]]; then
    echo "keeping existing $ENV_TARGET (use --force-env to replace it)"
else
    install -m 600 -o root -g root "$env_source" "$ENV_TARGET"
    echo "installed $ENV_TARGET (mode 600)"
fi

render "$TEMPLATE_DIR/crowdsky-worker.service.in" "$UNIT_DIR/crowdsky-worker.service"
render "$TEMPLATE_DIR/crowdsky-worker@.service.in" "$UNIT_DIR/crowdsky-worker@.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$UNIT_DIR/crowdsky-worker.service" || die "unit check failed"
fi
echo "shutdown timeout ${shutdown_timeout} s, TimeoutStopSec=${timeout_stop_sec}"
systemctl daemon-reload

if [[ "$instances" -gt 0 ]]; then
    units=()
    for i in $(seq 1 "$instances"); do units+=("crowdsky-worker@$i.service"); done
else
    units=("crowdsky-worker.service")
fi
if [[ "$start" -eq 1 ]]; then
    systemctl enable --now "${units[@]}"
    systemctl --no-pager --lines=5 status "${units[@]}" || true
else
    systemctl enable "${units[@]}"
fi
echo "done: ${units[*]} (logs: journalctl -u 'crowdsky-worker*' -f)"
