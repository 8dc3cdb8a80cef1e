# Kafka settings shared by fetch/start/stop/tool. Sourced, not run.
#
#   SFJIRA_KAFKA_PORT             client listener on 127.0.0.1          (default 19092)
#   SFJIRA_KAFKA_CONTROLLER_PORT  KRaft controller listener             (default 19093)
#   SFJIRA_KAFKA_HEAP             broker -Xmx (and -Xms is half of 512m) (default 512m)
#   SFJIRA_KAFKA_START_TIMEOUT    seconds to wait for the broker        (default 120)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

KAFKA_DIR="$SFJIRA_ROOT/infra/kafka"
# The one pinned version lives in pom.xml.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_DIR/pom.xml")"
KAFKA_LIBS="$SFJIRA_CACHE_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_PORT="${SFJIRA_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${SFJIRA_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP="${SFJIRA_KAFKA_HEAP:-512m}"
KAFKA_START_TIMEOUT="${SFJIRA_KAFKA_START_TIMEOUT:-120}"
KAFKA_RUN="$SFJIRA_RUN_DIR/kafka"
KAFKA_PIDFILE="$KAFKA_RUN/kafka.pid"
KAFKA_LOG="$KAFKA_RUN/kafka.log"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
# What a broker we started has in its command line (see pid_alive).
KAFKA_MARKER="kafka.Kafka $KAFKA_RUN/server.properties"

kafka_require_libs() {
  [ -f "$KAFKA_LIBS/.complete" ] || "$KAFKA_DIR/fetch"
}
