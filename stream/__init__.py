"""Nightjar on Kafka: the topology, the Faust worker, the producer and replay tools."""
