"""driftrank.generator"""
