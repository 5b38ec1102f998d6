#!/bin/bash
# the protocol in two lanes, one per core; Bit Fusion's rewards on 1,000 images, the rest on 500
cd /tmp/snap8
export OMP_NUM_THREADS=1 PYTHONPATH=/tmp/snap8:/tmp/snap8/bench
PY=.venv/bin/python
COMMON="--warmup-episodes 20 --reward-steps 0 --reward-bn-batches 2 --rescore-top 3 --rescore-images 5000 --fill-budget --finetune-steps 100 --no-resume --no-keep-ends --tag split60b"
lane_a() {
  $PY -u bench/haq_cifar.py --budgets bitfusion-latency --rows haq --episodes 300 --reward-images 1000 $COMMON
  $PY -u bench/haq_cifar.py --budgets size-2bit,size-3bit --rows haq --episodes 300 --reward-images 500 $COMMON
}
lane_b() {
  $PY -u bench/haq_cifar.py --budgets bitfusion-energy --rows haq --episodes 300 --reward-images 1000 $COMMON
  $PY -u bench/haq_cifar.py --budgets bitfusion-latency,bitfusion-energy,size-2bit,size-3bit --rows uniform --episodes 300 --reward-images 500 $COMMON
  $PY -u bench/haq_cifar.py --budgets cpu-ort-latency --episodes 100 --reward-images 500 $COMMON
}
date +%s > /tmp/lanes2.start
lane_a > /tmp/lane2A.log 2>&1 &
lane_b > /tmp/lane2B.log 2>&1 &
wait
date +%s > /tmp/lanes2.end
