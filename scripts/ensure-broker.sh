#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 (KMQ_BROKER_PORT), installing Debian's
# rabbitmq-server and starting a node when none does. With --with-kombu it also installs Debian's
# python3-kombu, python3-pika and python3-celery, which the interoperability tests run, and openssl
# (TLS tests).
set -euo pipefail
port="${KMQ_BROKER_PORT:-5672}"
with_kombu=false
[ "${1:-}" = "--with-kombu" ] && with_kombu=true

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-broker: '$*' missing; install it (sudo apt-get install $*) and run again" >&2
    exit 1
  fi
  if [ ! -f /tmp/.kmq-apt-updated ]; then
    apt-get update -qq >/dev/null && touch /tmp/.kmq-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if $with_kombu && ! /usr/bin/python3 -c "import kombu, pika, celery, brotli" 2>/dev/null; then
  echo "ensure-broker: installing python3-kombu, python3-pika, python3-celery and python3-brotli for the interoperability tests" >&2
  apt_install python3-kombu python3-pika python3-celery python3-brotli
fi

if $with_kombu && ! command -v openssl >/dev/null 2>&1; then
  echo "ensure-broker: installing openssl for the TLS tests" >&2
  apt_install openssl
fi

if $with_kombu && ! { command -v zsh && command -v fish; } >/dev/null 2>&1; then
  echo "ensure-broker: installing zsh and fish for the completion tests" >&2
  apt_install zsh fish
fi

if answers; then
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "ensure-broker: installing rabbitmq-server" >&2
  apt_install rabbitmq-server
fi
echo "ensure-broker: starting RabbitMQ (rabbitmq-server -detached)" >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 120); do
  if answers && rabbitmqctl -q status >/dev/null 2>&1; then
    # the port opens a little before the node accepts logins
    sleep 1
    echo "ensure-broker: RabbitMQ answers on 127.0.0.1:$port" >&2
    exit 0
  fi
  sleep 1
done
echo "ensure-broker: RabbitMQ did not start within 120 s; see /var/log/rabbitmq/" >&2
exit 1
