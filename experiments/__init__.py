"""driftrank.experiments"""
