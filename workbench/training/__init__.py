"""Training, evaluating and comparing model families.

(API summary filled in below as the modules land.)
"""
