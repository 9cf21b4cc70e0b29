#!/bin/sh
# One-shot job (compose service `temporal-namespace`, image temporalio/admin-tools).
#
# Makes sure deskpool's namespace exists and has the custom search attributes
# that deskpool's workflows upsert and that the API and the Temporal UI filter
# on. Temporal rejects an upsert of an unregistered attribute, so this must be
# done before the first worker starts; it is a job of its own because the
# server image does no such setup and the attributes belong to deskpool, not to
# Temporal. Safe to run again: what already exists is left alone, and an
# attribute registered earlier with another type fails the job loudly.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}"
: "${NAMESPACE_RETENTION:=720h}"

# name=Type pairs; keep in step with the workflows' search attribute keys.
SEARCH_ATTRIBUTES="
DeskpoolPool=Keyword
DeskpoolDesktop=Keyword
DeskpoolState=Keyword
DeskpoolUser=Keyword
DeskpoolTemplateVersion=Int
DeskpoolKind=Keyword
"

# Talk to the frontend by IPv4 address, as Temporal's own compose samples do:
# the CLI's gRPC name resolution of a bare compose service name can stall until
# the deadline. Fall back to the name when no IPv4 address is found.
host=${TEMPORAL_ADDRESS%:*}
port=${TEMPORAL_ADDRESS##*:}
ip=$(getent hosts "$host" 2>/dev/null | awk '$1 !~ /:/ { print $1; exit }') || ip=
ADDRESS=${ip:+$ip:$port}
ADDRESS=${ADDRESS:-$TEMPORAL_ADDRESS}

retry() {  # attempts, command...: run until it succeeds, 2 s apart
    attempts=$1
    shift
    n=1
    until "$@"; do
        if [ "$n" -ge "$attempts" ]; then
            return 1
        fi
        n=$((n + 1))
        sleep 2
    done
}

echo "temporal-namespace: waiting for Temporal at $ADDRESS"
retry 90 temporal operator cluster health --address "$ADDRESS" \
    || { echo "temporal-namespace: Temporal never became healthy" >&2; exit 1; }

if temporal operator namespace describe --namespace "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1; then
    echo "temporal-namespace: namespace $NAMESPACE exists"
else
    echo "temporal-namespace: creating namespace $NAMESPACE (retention $NAMESPACE_RETENTION)"
    temporal operator namespace create --namespace "$NAMESPACE" \
        --retention "$NAMESPACE_RETENTION" --address "$ADDRESS" \
        || temporal operator namespace describe --namespace "$NAMESPACE" --address "$ADDRESS" >/dev/null
fi

has_attribute() {  # name, type: registered in the namespace with that type
    temporal operator search-attribute list --namespace "$NAMESPACE" --address "$ADDRESS" 2>/dev/null \
        | grep -Eiq "(^|[^[:alnum:]_])$1[[:space:]\":]+(INDEXED_VALUE_TYPE_)?$2([^[:alnum:]_]|$)"
}

# A new namespace is usable only once every frontend has loaded it.
retry 30 temporal operator search-attribute list --namespace "$NAMESPACE" --address "$ADDRESS" >/dev/null \
    || { echo "temporal-namespace: namespace $NAMESPACE not usable" >&2; exit 1; }

for spec in $SEARCH_ATTRIBUTES; do
    name=${spec%=*}
    type=${spec#*=}
    if has_attribute "$name" "$type"; then
        echo "temporal-namespace: search attribute $name ($type) already registered"
        continue
    fi
    echo "temporal-namespace: registering search attribute $name ($type)"
    # "Already exists" (a concurrent run, a stale cache) is fine if the type matches.
    temporal operator search-attribute create --namespace "$NAMESPACE" --address "$ADDRESS" \
        --name "$name" --type "$type" || true
    retry 15 has_attribute "$name" "$type" || {
        echo "temporal-namespace: $name is not registered as $type; an attribute of that" >&2
        echo "name and another type exists, or the server refused it (see above)" >&2
        exit 1
    }
done
echo "temporal-namespace: done"
