"""The certificate: built from a spec and a score table (:mod:`.build`), its pydantic model
(:mod:`.model`), consistency checks and loading (:mod:`.checks`), the integrity seal (:mod:`.seal`),
the calibration-score reference for drift (:mod:`.reference`) and the deployed cascade built from
it (:mod:`.cascade`).
"""
