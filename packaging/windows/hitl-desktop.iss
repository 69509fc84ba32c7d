; Inno Setup script for Windows. Build the bundle first on Windows:
;   py -m pip install .[packaging] && pyinstaller --noconfirm packaging\hitl-desktop.spec
; then: iscc packaging\windows\hitl-desktop.iss   -> packaging\dist\HITL-Desk-Setup.exe
; NOT TRIED on these (Linux-only) machines; see README "Packaging".
#define AppName "HITL Desk"
#define AppVersion "0.1.0"
#define Bundle "..\dist\hitl-desktop"

[Setup]
AppId={{6C1E5B0E-3B8B-4C6E-9F3A-5D2B7A9C1E42}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=HITL Desk developers
DefaultDirName={autopf}\HITL Desk
DefaultGroupName=HITL Desk
OutputDir=..\dist
OutputBaseFilename=HITL-Desk-Setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
LicenseFile=..\..\LICENSE

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\HITL Desk Host"; Filename: "{app}\hitl-desktop.exe"; Parameters: "host"
Name: "{group}\HITL Desk Agent"; Filename: "{app}\hitl-desktop.exe"; Parameters: "agent"
Name: "{group}\HITL Desk Customer"; Filename: "{app}\hitl-desktop.exe"; Parameters: "customer"
Name: "{group}\HITL Desk Setup"; Filename: "{app}\hitl-desktop.exe"; Parameters: "setup"

[Registry]
; hitl:// and hitls:// invite links open the right window
Root: HKA; Subkey: "Software\Classes\hitl"; ValueType: string; ValueData: "URL:HITL Desk invite"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\hitl"; ValueName: "URL Protocol"; ValueType: string; ValueData: ""
Root: HKA; Subkey: "Software\Classes\hitl\shell\open\command"; ValueType: string; ValueData: """{app}\hitl-desktop.exe"" open ""%1"""
Root: HKA; Subkey: "Software\Classes\hitls"; ValueType: string; ValueData: "URL:HITL Desk invite (TLS)"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\hitls"; ValueName: "URL Protocol"; ValueType: string; ValueData: ""
Root: HKA; Subkey: "Software\Classes\hitls\shell\open\command"; ValueType: string; ValueData: """{app}\hitl-desktop.exe"" open ""%1"""
