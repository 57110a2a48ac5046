"""mkdocs hook: publish the benchmark plots kept in benchmarks/results/ with the site, at the same relative path.

The pages link them as ``benchmarks/results/<name>.png``; the files stay where the benchmark scripts write them.
"""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent


def on_files(files, config):
    for png in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        files.append(File(str(png.relative_to(ROOT)), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
