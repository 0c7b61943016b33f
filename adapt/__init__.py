"""driftrank.adapt"""
