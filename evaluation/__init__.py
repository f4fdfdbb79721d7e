"""How good a checkpoint is: likelihood against n-gram baselines, music statistics, the feature critic, verbatim
copies of the training set, per-part checks, and the report that gathers them (`toccata evaluate`)."""
