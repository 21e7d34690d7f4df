"""The demo shop and the evaluation harness: a simulator with known true responses, outside the product.

``demo.simulator`` writes a landing zone in the data contract's layout (and each user's true
response to every offer); ``demo.evaluate`` runs nights on such shops through the DAGs and
scores them against that truth. Nothing in promoflow, ml or spark_jobs imports this package.
"""
