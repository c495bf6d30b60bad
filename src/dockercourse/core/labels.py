"""Label keys the course puts on everything it creates.

Cleanup finds course resources by these labels only; a learner's own containers,
volumes, networks and images carry none of them and are never touched.
"""

PREFIX = "io.dockercourse"
CHAPTER = f"{PREFIX}.chapter"  # "02"
NAMESPACE = f"{PREFIX}.ns"  # the name prefix, e.g. "dc02-" (a grading worker has its own)
RUN = f"{PREFIX}.run"  # one id per setup() call
KIT = f"{PREFIX}.kit"  # image kit infrastructure (images, the mirror registry): "1"
KIT_SOURCE = f"{PREFIX}.kit.source"  # how a kit image was made: "pulled sha256:..." / "built from ..."
