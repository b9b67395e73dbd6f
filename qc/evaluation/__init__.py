"""The evaluation kit: score an AI product's output against a frozen version.

Framework-free (no Django). `truth` holds what is scored against, `submission`
parses and validates a product's files, `detection` / `classification` /
`segmentation` / `dr` (diabetic-retinopathy grading on fundus photographs)
compute the figures under stated conventions, `bootstrap` the seeded
confidence intervals, `kit.evaluate` puts one result together (JSON-ready, see
result.schema.json).
"""
