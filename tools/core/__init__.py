"""What every layer shares: the error hierarchy, settings and shared vocabularies.

Why a package of its own: errors and settings are needed by the data plane, the tools, the agent
and the fronts alike; living in ``tools/telemetry`` they made every layer depend on the data
plane. ``tools.core`` imports third-party libraries only, so anything may import it.
"""
