#!/bin/sh
# Test handler: the body says how to end. "again" asks for a requeue the first time only.
body=$(cat)
case "$body" in
  ok) echo "handled $body" ;;
  again) if [ "$KMQ_REDELIVERED" = "false" ]; then exit 75; fi; echo "handled $body on redelivery" ;;
  bad) exit 3 ;;
  signal) kill -9 $$ ;;
esac
