"""driftrank.evaluator"""
