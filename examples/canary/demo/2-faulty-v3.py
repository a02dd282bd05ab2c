
# --- canary: roll reviews out to v3, which fails 30% of its requests -------------------
reviews.run_locally("v3", command=demo_app("ratings/ratings/0") + ["--error-rate", "0.3"])
reviews.canary(target="v3", stable="v2", steps=[10, 50, 100], interval="3s",
               checks=[SuccessRate(min=99, interval="10s"),
                       LatencyP99(max_ms=500, interval="10s")],
               min_requests=5, no_data_limit=4)
