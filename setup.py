"""The one compiled part: gateway/service/fastpath*.c (the common message's readings and lines).
Optional: where it does not build (no C compiler), Sen installs and runs its Python versions."""

from setuptools import Extension, setup

_C = ["gateway/service/fastpath.c", "gateway/service/fastpath_readings.c", "gateway/service/fastpath_lines.c",
      "gateway/service/fastpath_envelope.c", "gateway/service/fastpath_scan.c", "gateway/service/fastpath_message.c"]

_H = ["gateway/service/fastpath.h", "gateway/service/fastpath_scan.h"]

setup(ext_modules=[Extension("gateway.service._fastpath", _C, depends=_H, optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"])])
