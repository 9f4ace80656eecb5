#!/bin/sh
# Test handler: marks itself running in $OVERLAP_DIR, waits (5 s at most) until another command runs
# beside it, then reports how many were running, in two lines that must stay together in kmq's
# output. Run one at a time, every command would report 1: no sleep decides the outcome.
touch "$OVERLAP_DIR/$KMQ_DELIVERY_TAG"
i=0
while [ "$(ls "$OVERLAP_DIR" | wc -l)" -lt 2 ] && [ $i -lt 50 ]; do
  sleep 0.1
  i=$((i + 1))
done
n=$(ls "$OVERLAP_DIR" | wc -l)
echo "first line of $KMQ_DELIVERY_TAG"
echo "second line of $KMQ_DELIVERY_TAG, $n started"
rm -f "$OVERLAP_DIR/$KMQ_DELIVERY_TAG"
