"""The Apache Beam pipeline: `pipeline.build_pipeline` wires sources, dedup, the stages'
teacher calls, the filters (`filtering`) and the shard writers (`sink`)."""
