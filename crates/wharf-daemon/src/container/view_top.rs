//! `docker top`: the host's `ps` output, keeping the rows of the container's processes.

use wharf_api::models::ContainerTopResponse;
use wharf_types::EngineError;

/// Keeps the `ps` rows whose PID is one of `pids` (thread rows, `-` in the PID column, follow
/// their process); a row's overhanging fields are joined into the last column (the command).
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<ContainerTopResponse, EngineError> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines.next().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::internal("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    let mut in_container = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        let keep = if *pid == "-" {
            in_container
        } else {
            let p: i32 = pid.parse().map_err(|_| EngineError::internal(format!("Unexpected pid '{pid}'")))?;
            in_container = pids.contains(&p);
            in_container
        };
        if keep {
            let n = titles.len().max(1);
            let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| (*s).to_owned()).collect();
            row.push(fields.iter().skip(n - 1).copied().collect::<Vec<_>>().join(" "));
            processes.push(row);
        }
    }
    Ok(ContainerTopResponse { titles: Some(titles), processes: Some(processes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_container_rows_and_joins_commands() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 42 1 0 10:01 ? 00:00:00 sh -c sleep 100\n";
        let t = parse_ps(out, &[42]).unwrap();
        assert_eq!(t.titles.unwrap().len(), 8);
        let p = t.processes.unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0][1], "42");
        assert_eq!(p[0][7], "sh -c sleep 100");
        assert!(parse_ps("USER CMD\n", &[]).is_err());
    }
}
