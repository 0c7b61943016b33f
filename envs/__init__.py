"""driftrank.envs"""
