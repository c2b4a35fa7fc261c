"""The pass/fail report of scenario runs: text for people, JUnit XML for a rig's CI (Jenkins, GitLab)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from agent.rig.runner import ScenarioResult

TRANSCRIPT_TAIL = 120  # lines of each transcript shown on failure


def text_report(result: ScenarioResult) -> str:
    """One line per check; on failure, the tail of the AT and NMEA transcripts (pyserial spy:// format)."""
    scenario = result.scenario
    status = "PASS" if result.passed else "FAIL"
    lines = [f"{status} {scenario.name} ({scenario.fault_class or '-'}): {scenario.description}",
             f"  {result.elapsed_s:.1f} s for {scenario.scripted_wait_s():.1f} s scripted"]
    if result.error:
        lines.append(f"  error: {result.error}")
    lines += [f"  [{'ok' if check.passed else 'FAILED'}] {check.check}: {check.detail}" for check in result.checks]
    if not result.passed:
        lines += _transcript("AT port and daemon log", result.at_transcript)
        lines += _transcript("NMEA port", result.nmea_transcript)
    return "\n".join(lines)


def _transcript(title: str, transcript: Sequence[str]) -> list[str]:
    tail = list(transcript)[-TRANSCRIPT_TAIL:]
    return [f"  --- transcript: {title} (last {len(tail)} lines) ---", *(f"  {line}" for line in tail)]


def junit_xml(results: Sequence[ScenarioResult], suite: str = "privacy-agent-rig") -> bytes:
    """One <testcase> per scenario; a failed one carries the report and its transcript."""
    failures = sum(1 for result in results if not result.passed and result.error is None)
    errors = sum(1 for result in results if result.error is not None)
    root = ET.Element("testsuites")
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)), failures=str(failures),
                            errors=str(errors), time=f"{sum(result.elapsed_s for result in results):.3f}")
    for result in results:
        case = ET.SubElement(element, "testcase", classname=f"{suite}.{result.scenario.fault_class or 'scenario'}",
                             name=result.scenario.name, time=f"{result.elapsed_s:.3f}")
        if result.error is not None:
            ET.SubElement(case, "error", message=result.error).text = text_report(result)
        elif not result.passed:
            failed = [check.check for check in result.checks if not check.passed]
            ET.SubElement(case, "failure", message="failed: " + ", ".join(failed)).text = text_report(result)
        else:
            ET.SubElement(case, "system-out").text = text_report(result)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
