#!/bin/bash
# the protocol in two lanes, one per core
cd /tmp/snap7
export OMP_NUM_THREADS=1 PYTHONPATH=/tmp/snap7:/tmp/snap7/bench
PY=.venv/bin/python
COMMON="--warmup-episodes 20 --reward-images 500 --reward-steps 0 --reward-bn-batches 2 --rescore-top 3 --rescore-images 5000 --fill-budget --finetune-steps 100 --no-resume --no-keep-ends --tag split60"
lane_a() {
  $PY -u bench/haq_cifar.py --budgets bitfusion-latency,size-2bit,size-3bit --rows haq --episodes 300 $COMMON
}
lane_b() {
  $PY -u bench/haq_cifar.py --budgets bitfusion-energy --rows haq --episodes 300 $COMMON
  $PY -u bench/haq_cifar.py --budgets bitfusion-latency,bitfusion-energy,size-2bit,size-3bit --rows uniform --episodes 300 $COMMON
  $PY -u bench/haq_cifar.py --budgets cpu-ort-latency --episodes 100 $COMMON
}
date +%s > /tmp/lanes.start
lane_a > /tmp/laneA.log 2>&1 &
lane_b > /tmp/laneB.log 2>&1 &
wait
date +%s > /tmp/lanes.end
