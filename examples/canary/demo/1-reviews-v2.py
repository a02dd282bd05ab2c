
# --- canary: roll reviews out to v2, judged on live metrics every 3 s ------------------
reviews.canary(target="v2", stable="v1", steps=[10, 50, 100], interval="3s",
               checks=[SuccessRate(min=99, interval="10s"),
                       LatencyP99(max_ms=500, interval="10s")],
               min_requests=5, no_data_limit=4)
