"""driftrank.agents"""
