#!/bin/sh
# Test handler: marks its start in $OVERLAP_DIR, waits, then reports how many had started by then,
# in two lines that must stay together in kmq's output.
touch "$OVERLAP_DIR/$KMQ_DELIVERY_TAG"
sleep 0.4
n=$(ls "$OVERLAP_DIR" | wc -l)
echo "first line of $KMQ_DELIVERY_TAG"
echo "second line of $KMQ_DELIVERY_TAG, $n started"
