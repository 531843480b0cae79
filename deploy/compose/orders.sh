#!/bin/sh
# Produces $ORDERS sample paid orders (the shape deploy/examples/web-shop
# maps) on shop.orders, keyed by order id, timestamped now. Runs in the
# apache/kafka image (profile "demo" of compose.yaml).
set -eu
n=${ORDERS:-20}
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run=$(date -u +%s)
i=1
while [ "$i" -le "$n" ]; do
  id="ord_${run}_$i"
  printf '%s|{"order_id":"%s","status":"paid","created_at":"%s","currency":"USD","total":"129.98","checkout_url":"https://shop.example.com/checkout/confirmation?session=s%s","attribution":{"oppref":"oppref_demo"},"customer":{"id":"cust_%s","email":"user%s@example.com","country":"US"},"client":{"ip":"203.0.113.7","user_agent":"Mozilla/5.0"},"items":[{"sku":"sku_123","title":"Starter bundle","qty":1,"unit_price":"99.99"},{"sku":"sku_456","title":"Refill pack","qty":2,"unit_price":"14.995"}]}\n' \
    "$id" "$id" "$now" "$i" "$i" "$i"
  i=$((i + 1))
done | /opt/kafka/bin/kafka-console-producer.sh --bootstrap-server kafka:19092 --topic shop.orders \
  --property parse.key=true --property key.separator='|'
echo "produced $n orders on shop.orders"
