#!/bin/sh
# Entry point of the one Container Cloud image: the first argument picks the service.
#
#   ccloud-entrypoint SERVICE [ARGS...]   runs `python -m services.SERVICE ARGS...`
#
# SERVICE is the module below services/ (api, bridge, lcm, lcm.agent, release, attach,
# providers.baremetal, ...); settings come from the CCLOUD_* environment.
set -eu

usage() {
    echo "usage: ccloud-entrypoint SERVICE [ARGS...]" >&2
    echo "  SERVICE: api, bridge, lcm, lcm.agent, release, attach, providers.<name>" >&2
}

if [ $# -eq 0 ]; then
    usage
    exit 2
fi
case "$1" in
    -h|--help)
        usage
        exit 0
        ;;
esac

service=$1
shift
case "$service" in
    ''|.*|*.|*..*|*[!a-z0-9._]*)
        echo "error: bad service name '$service' (expected e.g. api or providers.baremetal)" >&2
        exit 2
        ;;
esac

python=${PYTHON:-python}
module="services.$service"
if ! "$python" -c 'import importlib.util, sys
sys.exit(0 if importlib.util.find_spec(sys.argv[1] + ".__main__") else 1)' "$module" 2>/dev/null
then
    echo "error: unknown service '$service' (no module $module)" >&2
    exit 2
fi
exec "$python" -m "$module" "$@"
